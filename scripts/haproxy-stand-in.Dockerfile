# A local stand-in for haproxy:2.6 where no container registry can be reached (scripts/test-split.sh builds it
# FROM the debootstrapped bookworm that scripts/test-container.sh makes): Debian bookworm's haproxy 2.6, laid out
# like the official image (its config at /usr/local/etc/haproxy/haproxy.cfg, run as the user haproxy).
FROM senpos-local/bookworm-minbase:latest
LABEL org.opencontainers.image.description="senpos test stand-in for haproxy:2.6"
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
