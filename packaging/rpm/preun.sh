@MAINTAINER_LIB@
# 0: the package is being erased (not upgraded).
if [ "$1" -eq 0 ]; then gpuhook_unregister; fi
