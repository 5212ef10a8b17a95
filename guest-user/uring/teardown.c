#include "ut.h"
static int stub(void) { return UT_OK; }
UT_FAMILY(teardown, T(stub));
