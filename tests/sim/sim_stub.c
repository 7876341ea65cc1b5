/* Body of every simulated driver library that only has to exist as a real
 * ELF shared object (tests/sim/make-driver.sh links it under many sonames). */
int sim_nvidia_stub(void);

int sim_nvidia_stub(void)
{
	return 0;
}
