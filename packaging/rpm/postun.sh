@MAINTAINER_LIB@
# rpm has no purge: erasing removes the log and configure's backups; an edited config.toml is
# kept by rpm as config.toml.rpmsave.
if [ "$1" -eq 0 ]; then gpuhook_purge; fi
