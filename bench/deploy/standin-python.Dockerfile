# A stand-in for python:3.11-slim, for machines that cannot pull it: Debian bookworm's Python 3.11
# (bench/deploy_check.py imports its debootstrap as prime-fabric-standin/debian), with a venv at
# /usr/local so `python` and `pip` are in /usr/local/bin as in the official image, and the host's
# CA bundle so pip reaches the package index through this network.
FROM prime-fabric-standin/debian:bookworm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8
RUN python3 -m venv /usr/local && /usr/local/bin/pip install --no-cache-dir --quiet --upgrade pip
