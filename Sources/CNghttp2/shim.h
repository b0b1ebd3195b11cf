#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>

// The version macro is not visible to Swift; this turns it into a function.
static inline int CNghttp2_version_num(void) { return NGHTTP2_VERSION_NUM; }

#endif
