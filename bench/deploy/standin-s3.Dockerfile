# A stand-in for MinIO (not packaged by Debian): moto's S3 server from PyPI, on port 9000.
FROM prime-fabric-standin/python:3.11
RUN pip install --no-cache-dir --quiet "moto[server]>=5.0"
