/* Simulated nvidia-smi: linked against the simulated libnvidia-ml.so.1, so it
 * only runs where the dynamic loader can find that library (ld cache,
 * LD_LIBRARY_PATH). Supports `nvidia-smi`, `nvidia-smi -L` (which lists the
 * MIG devices of a GPU in MIG mode under it, as the real one does) and
 * `nvidia-smi --query-gpu=FIELDS --format=csv[,noheader][,nounits]` with the
 * fields index, name, uuid, driver_version, memory.total, memory.used and
 * memory.free, printed as the real one prints them (values from NVML:
 * memory from nvmlDeviceGetMemoryInfo_v2, in MiB). */
#include <stdio.h>
#include <string.h>

#include "sim_nvml.h"

#define RULE "+--------------------------------------------------------------------------------------+"

static int failed(const char *what, int rc)
{
	fprintf(stderr, "%s failed: %s\n", what, nvmlErrorString(rc));
	nvmlShutdown();
	return 255;
}

/* Initialises NVML and counts the GPUs; 0, or the exit status nvidia-smi
 * gives when it cannot (9: no driver, 6: no GPU) after saying why. */
static int open_gpus(unsigned int *count)
{
	int rc;

	if (nvmlInit_v2() != NVML_SUCCESS) {
		printf("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
		       "Make sure that the latest NVIDIA driver is installed and running.\n");
		return 9;
	}
	rc = nvmlDeviceGetCount_v2(count);
	if (rc != NVML_SUCCESS)
		return failed("nvmlDeviceGetCount_v2", rc);
	if (*count == 0) {
		printf("No devices were found\n");
		nvmlShutdown();
		return 6;
	}
	return 0;
}

/* `  MIG 3g.40gb     Device  0: (UUID: MIG-...)` per MIG device of dev. */
static int list_mig(nvmlDevice_t dev)
{
	unsigned int current = 0, pending = 0, max = 0, i;
	int rc = nvmlDeviceGetMigMode(dev, &current, &pending);

	if (rc != NVML_SUCCESS || current != NVML_DEVICE_MIG_ENABLE)
		return NVML_SUCCESS;
	rc = nvmlDeviceGetMaxMigDeviceCount(dev, &max);
	if (rc != NVML_SUCCESS)
		return rc;
	for (i = 0; i < max; i++) {
		nvmlDevice_t mig;
		char uuid[96];

		rc = nvmlDeviceGetMigDeviceHandleByIndex(dev, i, &mig);
		if (rc == NVML_ERROR_NOT_FOUND)
			continue;
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetUUID(mig, uuid, sizeof uuid);
		if (rc != NVML_SUCCESS)
			return rc;
		printf("  MIG 3g.40gb     Device %2u: (UUID: %s)\n", i, uuid);
	}
	return NVML_SUCCESS;
}

/* --query-gpu's fields and the header nvidia-smi prints for each; memory
 * amounts are printed in MiB, with " MiB" unless nounits. */
enum what { INDEX, NAME, UUID, DRIVER, MEM_TOTAL, MEM_USED, MEM_FREE };
static const struct field {
	const char *name, *header;
	enum what what;
} FIELDS[] = {
	{ "index", "index", INDEX },
	{ "name", "name", NAME },
	{ "uuid", "uuid", UUID },
	{ "driver_version", "driver_version", DRIVER },
	{ "memory.total", "memory.total [MiB]", MEM_TOTAL },
	{ "memory.used", "memory.used [MiB]", MEM_USED },
	{ "memory.free", "memory.free [MiB]", MEM_FREE },
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])
#define MAX_QUERY 16

static const struct field *field_named(const char *name)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (strcmp(FIELDS[i].name, name) == 0)
			return &FIELDS[i];
	return NULL;
}

/* One field of GPU `index` into out; an NVML error code, or NVML_SUCCESS. */
static int field_value(enum what what, unsigned int index, nvmlDevice_t dev, int units,
		       char *out, unsigned int size)
{
	nvmlMemory_v2_t memory = { .version = nvmlMemory_v2 };
	unsigned long long bytes;
	int rc;

	switch (what) {
	case INDEX:
		snprintf(out, size, "%u", index);
		return NVML_SUCCESS;
	case NAME:
		return nvmlDeviceGetName(dev, out, size);
	case UUID:
		return nvmlDeviceGetUUID(dev, out, size);
	case DRIVER:
		return nvmlSystemGetDriverVersion(out, size);
	default:
		break;
	}
	rc = nvmlDeviceGetMemoryInfo_v2(dev, &memory);
	if (rc != NVML_SUCCESS)
		return rc;
	bytes = what == MEM_TOTAL ? memory.total : what == MEM_USED ? memory.used : memory.free;
	snprintf(out, size, "%llu%s", bytes >> 20, units ? " MiB" : "");
	return NVML_SUCCESS;
}

/* `--query-gpu=FIELDS --format=FORMAT`: one CSV line per GPU. */
static int query_gpu(char *fields, char *format)
{
	const struct field *query[MAX_QUERY];
	int header = 1, units = 1, csv = 0;
	unsigned int count = 0, n = 0, i, j;
	char *item, *save;
	int rc;

	for (item = strtok_r(format, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (strcmp(item, "csv") == 0)
			csv = 1;
		else if (strcmp(item, "noheader") == 0)
			header = 0;
		else if (strcmp(item, "nounits") == 0)
			units = 0;
		else {
			fprintf(stderr, "Invalid format \"%s\".\n", item);
			return 2;
		}
	}
	if (!csv) {
		fprintf(stderr, "--format=csv is required with --query-gpu\n");
		return 2;
	}
	for (item = strtok_r(fields, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (n == MAX_QUERY) {
			fprintf(stderr, "simulated nvidia-smi: at most %d fields\n", MAX_QUERY);
			return 2;
		}
		query[n] = field_named(item);
		if (query[n] == NULL) {
			fprintf(stderr, "Field \"%s\" is not a valid field to query.\n", item);
			return 2;
		}
		n++;
	}
	rc = open_gpus(&count);
	if (rc != 0)
		return rc;
	for (j = 0; header && j < n; j++)
		printf("%s%s", j ? ", " : "", query[j]->header);
	if (header)
		printf("\n");
	for (i = 0; i < count; i++) {
		nvmlDevice_t dev;
		char value[128];

		rc = nvmlDeviceGetHandleByIndex_v2(i, &dev);
		for (j = 0; j < n && rc == NVML_SUCCESS; j++) {
			rc = field_value(query[j]->what, i, dev, units, value, sizeof value);
			if (rc == NVML_SUCCESS)
				printf("%s%s", j ? ", " : "", value);
		}
		if (rc != NVML_SUCCESS)
			return failed("querying a GPU", rc);
		printf("\n");
	}
	nvmlShutdown();
	return 0;
}

/* The value of `--name=VALUE` or `--name VALUE` at argv[*i], or NULL. */
static char *option(int argc, char **argv, int *i, const char *name)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

int main(int argc, char **argv)
{
	char driver[80], name[96], uuid[96];
	unsigned int count = 0, i;
	int cuda = 0;
	int list = argc > 1 && strcmp(argv[1], "-L") == 0;
	int rc;

	if (argc > 1 && !list) {
		char *fields = NULL, *format = NULL, *value;
		int a, unknown = 0;

		for (a = 1; a < argc && !unknown; a++) {
			if ((value = option(argc, argv, &a, "--query-gpu")) != NULL)
				fields = value;
			else if ((value = option(argc, argv, &a, "--format")) != NULL)
				format = value;
			else
				unknown = 1;
		}
		if (!unknown && fields != NULL && format != NULL)
			return query_gpu(fields, format);
		fprintf(stderr, "simulated nvidia-smi: only no arguments, -L, or --query-gpu=FIELDS "
				"--format=csv[,noheader][,nounits] are supported\n");
		return 2;
	}
	rc = open_gpus(&count);
	if (rc != 0)
		return rc;
	if (!list) {
		rc = nvmlSystemGetDriverVersion(driver, sizeof driver);
		if (rc != NVML_SUCCESS)
			return failed("nvmlSystemGetDriverVersion", rc);
		nvmlSystemGetCudaDriverVersion_v2(&cuda);
		printf("%s\n", RULE);
		printf("| NVIDIA-SMI %-12s    Driver Version: %-12s    CUDA Version: %2d.%-8d |\n",
		       driver, driver, cuda / 1000, (cuda % 1000) / 10);
		printf("|%.86s|\n", RULE + 1);
		printf("| GPU  Name                            Minor  UUID                                     |\n");
		printf("|%s|\n", "======================================================================================");
	}
	for (i = 0; i < count; i++) {
		nvmlDevice_t dev;
		unsigned int minor = 0;

		rc = nvmlDeviceGetHandleByIndex_v2(i, &dev);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetName(dev, name, sizeof name);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetMinorNumber(dev, &minor);
		if (rc != NVML_SUCCESS)
			return failed("querying a GPU", rc);
		if (list) {
			printf("GPU %u: %s (UUID: %s)\n", i, name, uuid);
			rc = list_mig(dev);
			if (rc != NVML_SUCCESS)
				return failed("listing MIG devices", rc);
		} else
			printf("| %3u  %-31s %5u  %-40s |\n", i, name, minor, uuid);
	}
	if (!list)
		printf("%s\n", RULE);
	nvmlShutdown();
	return 0;
}
