@MAINTAINER_LIB@
# $1 is the number of installed versions after this one: 1 on a first install.
if [ "$1" -eq 1 ]; then gpuhook_register first; else gpuhook_register upgrade; fi
