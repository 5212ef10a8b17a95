/*
 * A static-PIE executable (ET_DYN, no interpreter) built with glibc:
 *   gcc -static-pie -O2 -o static-pie static-pie.c
 * It relocates itself at startup, sets up TLS, uses malloc and stdio, and exits with 5,
 * so a test can tell the loader placed it, passed the auxiliary vector and ran it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char *p = malloc(64);
    if (p == NULL)
        return 1;
    snprintf(p, 64, "static-pie: %s with %d args", argv[0], argc);
    puts(p);
    free(p);
    return 5;
}
