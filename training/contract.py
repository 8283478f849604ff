"""Studio's vocabulary, as docs/contract.md states it: the names the snapshot, the model and the
Studio kit share. Everything else imports these instead of spelling them again."""

STEMS = ("vocals", "drums", "bass", "harmonic", "perc", "sub")
KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")
STREAMS = ("spectral", "temporal", "harmonic", "percussive", "stereo")  # the time-varying quantumFeatures
FEATURE_STREAMS = (*STREAMS, "energy")  # every quantumFeatures array; energy is 4 summary values
CORRECTION_TYPES = ("boost", "cut", "isolation", "masking")
# Studio's downsampling caps (stemSeparationSnapshot.ts): streams keep every ceil(n/1000)-th
# value, ground-truth stems every ceil(n/500)-th sample of channel 0.
MAX_STREAM_VALUES = 1000
MAX_STEM_VALUES = 500
