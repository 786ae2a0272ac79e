# A local stand-in for python:3.11-slim-bookworm where no container registry can be reached
# (scripts/test-container.sh builds it FROM a debootstrapped bookworm with python3 3.11, python3-venv and
# ca-certificates). Like the real image, `python` and `pip` come first on PATH, and pip installs into them: here
# a virtualenv, since Debian's own pip refuses system installs (PEP 668). The build context's ca/ holds the host's
# locally added CA certificates, which pip inside a container needs wherever egress passes through a TLS proxy.
FROM senpos-local/bookworm-minbase:latest
LABEL org.opencontainers.image.description="senpos test stand-in for python:3.11-slim-bookworm"
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
CMD ["python3"]
