# A stand-in for redis:7 (Debian's Redis 7.0): redis-server and redis-cli, data in /data.
FROM prime-fabric-standin/python:3.11
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
CMD ["redis-server", "--protected-mode", "no"]
