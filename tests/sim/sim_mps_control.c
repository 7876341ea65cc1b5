/* Simulated nvidia-cuda-mps-control: the MPS control daemon's command-line
 * interface, enough for gpuhook's pools (see tests/sim/README.md).
 *
 *   nvidia-cuda-mps-control -d   daemon: serves the unix socket
 *                                $CUDA_MPS_PIPE_DIRECTORY/control (default
 *                                /tmp/nvidia-mps), writes its pid to
 *                                nvidia-cuda-mps-control.pid there, starts one
 *                                "server" child, and returns once it serves.
 *   nvidia-cuda-mps-control      client: sends stdin to the daemon, prints
 *                                the answers.
 *
 * In $CUDA_MPS_LOG_DIRECTORY (default /var/log/nvidia-mps) the daemon keeps
 * `environ` (its whole environment at start, one NAME=value a line) and
 * `commands` (every command line it got, in order, and `started` first).
 * Answers: get_server_list gives the server's pid; set_default_active_thread_
 * percentage N gives N; get_default_device_pinned_mem_limit DEV gives what
 * set_default_device_pinned_mem_limit DEV VALUE set (or "none") and
 * get_default_active_thread_percentage the percentage set (or 100), so a client
 * in a container can see what its pool's daemon was told; anything else
 * nothing; quit stops the server and the daemon. When the file SIM_MPS_HANG exists, `-d` keeps running after the
 * daemon serves (a start that never returns, for killed-hook tests). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SIM_MPS_HANG
#define SIM_MPS_HANG "/nonexistent/mps-hang"
#endif

extern char **environ;

static const char *dir_of(const char *var, const char *fallback)
{
	const char *v = getenv(var);
	return v != NULL && v[0] != '\0' ? v : fallback;
}

static int socket_address(const char *pipe_dir, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	if ((size_t)snprintf(addr->sun_path, sizeof addr->sun_path, "%s/control", pipe_dir)
	    >= sizeof addr->sun_path) {
		fprintf(stderr, "nvidia-cuda-mps-control: pipe directory path too long\n");
		return -1;
	}
	return 0;
}

static void append(const char *log_dir, const char *name, const char *line)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", log_dir, name);
	f = fopen(path, "ae");
	if (f == NULL)
		return;
	fprintf(f, "%s\n", line);
	fclose(f);
}

static void write_environ(const char *log_dir)
{
	for (char **e = environ; *e != NULL; e++)
		append(log_dir, "environ", *e);
}

#define MAX_DEVICES 64
static char limits[MAX_DEVICES][32];
static int percentage = 100;

/* Answers one connection; returns 1 when it asked to quit. */
static int serve(int conn, const char *log_dir, pid_t server)
{
	char buf[8192], out[8192];
	size_t len = 0, out_len = 0;
	ssize_t n;
	int quit = 0;

	while (len < sizeof buf - 1 && (n = read(conn, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		int percent, dev;
		char value[32];

		append(log_dir, "commands", line);
		if (strcmp(line, "get_server_list") == 0)
			out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%d\n", (int)server);
		else if (sscanf(line, "set_default_active_thread_percentage %d", &percent) == 1) {
			percentage = percent;
			out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%d\n", percent);
		} else if (strcmp(line, "get_default_active_thread_percentage") == 0)
			out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%d\n", percentage);
		else if (sscanf(line, "set_default_device_pinned_mem_limit %d %31s", &dev, value) == 2
			 && dev >= 0 && dev < MAX_DEVICES)
			snprintf(limits[dev], sizeof limits[dev], "%s", value);
		else if (sscanf(line, "get_default_device_pinned_mem_limit %d", &dev) == 1
			 && dev >= 0 && dev < MAX_DEVICES)
			out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%s\n",
						    limits[dev][0] != '\0' ? limits[dev] : "none");
		else if (strcmp(line, "quit") == 0)
			quit = 1;
		if (out_len >= sizeof out)
			out_len = sizeof out - 1;
	}
	if (out_len > 0 && write(conn, out, out_len) < 0)
		perror("write");
	close(conn);
	return quit;
}

static int daemon_mode(void)
{
	const char *pipe_dir = dir_of("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps");
	const char *log_dir = dir_of("CUDA_MPS_LOG_DIRECTORY", "/var/log/nvidia-mps");
	struct sockaddr_un addr;
	int ready[2], lsock, devnull;
	char byte, path[4096];
	pid_t child, server;

	if (socket_address(pipe_dir, &addr) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		return 1;
	mkdir(pipe_dir, 0755);
	mkdir(log_dir, 0755);
	child = fork();
	if (child < 0)
		return 1;
	if (child > 0) {
		close(ready[1]);
		if (read(ready[0], &byte, 1) != 1) {
			fprintf(stderr, "nvidia-cuda-mps-control: daemon failed to start\n");
			return 1;
		}
		if (access(SIM_MPS_HANG, F_OK) == 0)
			sleep(3600);
		return 0;
	}
	close(ready[0]);
	setsid();
	devnull = open("/dev/null", O_RDWR);
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	write_environ(log_dir);
	append(log_dir, "commands", "started");
	server = fork();
	if (server == 0) {
		close(ready[1]);
		for (;;)
			pause();
	}
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(addr.sun_path);
	if (lsock < 0 || bind(lsock, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lsock, 16) != 0)
		_exit(1);
	chmod(addr.sun_path, 0777);
	snprintf(path, sizeof path, "%s/nvidia-cuda-mps-control.pid", pipe_dir);
	{
		FILE *f = fopen(path, "we");
		if (f == NULL)
			_exit(1);
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	if (write(ready[1], "r", 1) != 1)
		_exit(1);
	close(ready[1]);
	for (;;) {
		int conn = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (serve(conn, log_dir, server)) {
			kill(server, SIGTERM);
			waitpid(server, NULL, 0);
			unlink(addr.sun_path);
			unlink(path);
			append(log_dir, "commands", "stopped");
			_exit(0);
		}
	}
}

static int client_mode(void)
{
	const char *pipe_dir = dir_of("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps");
	struct sockaddr_un addr;
	char buf[8192];
	ssize_t n;
	int sock;

	if (socket_address(pipe_dir, &addr) != 0)
		return 1;
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
		fprintf(stderr, "Cannot find MPS control daemon process\n");
		return 1;
	}
	while ((n = read(0, buf, sizeof buf)) > 0)
		if (write(sock, buf, (size_t)n) != n)
			return 1;
	shutdown(sock, SHUT_WR);
	while ((n = read(sock, buf, sizeof buf)) > 0)
		if (write(1, buf, (size_t)n) != n)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-d") == 0)
		return daemon_mode();
	if (argc > 1) {
		fprintf(stderr, "usage: nvidia-cuda-mps-control [-d] (simulated)\n");
		return 2;
	}
	return client_mode();
}
