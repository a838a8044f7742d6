/*
 * replay.c: a main() for a libFuzzer target without libFuzzer. It feeds
 * every file named (a directory: every file in it) to the target's
 * LLVMFuzzerTestOneInput once. The normal build links each target with
 * it and ctest replays the committed corpus, where every input that ever
 * crashed a target is kept: a crash found once stays a regression test,
 * in the plain, ASan+UBSan and valgrind-free builds alike.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the target on one file; returns 0, or -1 if it cannot be read. */
static int
replay_file(const char *path, size_t size)
{
	/* Exactly size bytes, as libFuzzer passes them: ASan sees overreads. */
	uint8_t *data = malloc(size ? size : 1);
	FILE *fp = fopen(path, "rb");
	int rc = -1;

	if (data == NULL || fp == NULL)
		perror(path);
	else if (fread(data, 1, size, fp) != size)
		fprintf(stderr, "%s: short read\n", path);
	else
		rc = 0;
	if (fp != NULL)
		fclose(fp);
	if (rc == 0)
		LLVMFuzzerTestOneInput(data, size);
	free(data);
	return rc;
}

/* Runs the target on path, or on every regular file in it. */
static int
replay_path(const char *path, unsigned *count)
{
	struct dirent **names;
	struct stat st;
	char file[4096];
	int i, n, rc = 0;

	if (stat(path, &st) == -1) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path, (size_t)st.st_size);
	}
	if ((n = scandir(path, &names, NULL, alphasort)) == -1) {
		perror(path);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' &&
		    snprintf(file, sizeof(file), "%s/%s", path,
			     names[i]->d_name) < (int)sizeof(file) &&
		    stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			(*count)++;
			if (replay_file(file, (size_t)st.st_size) == -1)
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	unsigned count = 0;
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR ...\n", argv[0]);
		return 64;
	}
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) == -1)
			rc = 1;
	if (count == 0) {
		fprintf(stderr, "%s: no inputs\n", argv[0]);
		return 1;
	}
	printf("%s: %u inputs replayed\n", argv[0], count);
	return rc;
}
