#include "ut.h"
static int stub(void) { return UT_OK; }
UT_FAMILY(eventfd2, T(stub));
