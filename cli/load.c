/* placeholder until the load generator lands */
#include "cli.h"

#include <stdio.h>

int
cli_load(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sluice load: not built yet\n");
	return 1;
}
