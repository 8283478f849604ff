# A stand-in for postgres:15 (Debian's PostgreSQL 15): POSTGRES_USER, POSTGRES_PASSWORD and
# POSTGRES_DB as the official image reads them, data in /var/lib/postgresql/data, pg_isready.
FROM prime-fabric-standin/python:3.11
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY standin-postgres.sh /usr/local/bin/standin-postgres.sh
ENTRYPOINT ["sh", "/usr/local/bin/standin-postgres.sh"]
