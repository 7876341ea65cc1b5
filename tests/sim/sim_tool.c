/* Simulated driver executables (nvidia-debugdump, nvidia-persistenced, ...):
 * print the baked-in name and exit 0. */
#include <stdio.h>

#ifndef SIM_DRIVER_VERSION
#define SIM_DRIVER_VERSION "580.159.04"
#endif

#ifndef SIM_TOOL_NAME
#define SIM_TOOL_NAME "nvidia-tool"
#endif

int main(void)
{
	printf("%s (simulated, driver %s)\n", SIM_TOOL_NAME, SIM_DRIVER_VERSION);
	return 0;
}
