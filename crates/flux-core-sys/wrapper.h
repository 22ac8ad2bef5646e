/* The one header bindgen reads: the public libflux-core API. */
#include <flux/core.h>
