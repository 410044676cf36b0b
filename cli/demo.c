/* placeholder until the demo lands */
#include "cli.h"

#include <stdio.h>

int
cli_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sluice demo: not built yet\n");
	return 1;
}
