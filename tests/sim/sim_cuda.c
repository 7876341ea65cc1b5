/* Simulated libcuda.so: just enough for driver-version checks. */
#ifndef SIM_CUDA_VERSION
#define SIM_CUDA_VERSION 13000
#endif

int cuDriverGetVersion(int *driverVersion);
int cuInit(unsigned int flags);

int cuDriverGetVersion(int *driverVersion)
{
	if (driverVersion == 0)
		return 1; /* CUDA_ERROR_INVALID_VALUE */
	*driverVersion = SIM_CUDA_VERSION;
	return 0;
}

int cuInit(unsigned int flags)
{
	(void)flags;
	return 0;
}
