# Runs a dockerd that lives in a chroot (Debian 13's 26.1: scripts/build-dockerd-26), as a private
# daemon: the recipe of ../shared/dockerd-26.md, shared by chaosvol.testing.private_dockerd and
# scripts/dockerd.sh. Run it inside a private mount namespace, so that its mounts leave with it:
#
#   R=CHROOT S=STATEDIR unshare --mount --propagation private bash dockerd-chroot.sh DOCKERD-ARGS...
#
# Inside the chroot, /run is STATEDIR/run (kept across restarts: live-restore needs containerd's
# state), /run/docker/plugins is the caller's (plugin sockets are found where chaosvol puts them),
# and /tmp is the caller's /tmp (sockets, data-roots and plugin Mountpoints have the same paths
# inside and out). Every step execs: the process that started it becomes dockerd.
set -e
mount --bind "$R" "$R"  # the root of a chroot must be a mount point for runc's pivot_root
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mkdir -p "$S/run"
mount --bind "$S/run" "$R/run"
mkdir -p "$R/run/docker/plugins" /run/docker/plugins
mount --bind /run/docker/plugins "$R/run/docker/plugins"
mount --bind /tmp "$R/tmp"
exec chroot "$R" /usr/sbin/dockerd --exec-root /run/docker-exec --pidfile /run/docker.pid --ip6tables=false "$@"
