# The rootfs of chaosvol's managed plugin (scripts/build-plugin turns it into a plugin).
#
# Offline by design: chaosvol and its dependencies come as wheels built on the host
# (wheels/, made by scripts/build-plugin), so the build needs no package index. With a
# registry and network, the default base works as is; without, scripts/build-plugin makes a
# Debian base with debootstrap and passes it as BASE_IMAGE, with PIP_NO_INDEX=1.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ARG PIP_NO_INDEX
COPY wheels/ /wheels/
COPY profiles/ /profiles/
RUN python3 -m venv /opt/chaosvol \
 && /opt/chaosvol/bin/pip install --no-cache-dir --disable-pip-version-check --find-links /wheels chaosvol \
 && rm -rf /wheels \
 && mkdir -p /run/docker/plugins /mnt/volumes /host-plugins
# Not a shell: chaosvol is PID 1 and handles SIGTERM itself (a disable takes 0.1 s, not 10).
# A managed plugin runs config.json's entrypoint; this one is for `docker run` of the image.
ENTRYPOINT ["/opt/chaosvol/bin/chaosvol", "managed"]
