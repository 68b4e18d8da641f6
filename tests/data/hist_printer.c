/* The histogram printers of libbpf-tools' trace_helpers.c, rewritten for btfgen's
 * tests from their documented output format (print_stars, print_log2_hist,
 * print_linear_hist): `hist_printer log2 VAL_TYPE N v0 v1 ...` or
 * `hist_printer linear VAL_TYPE BASE STEP N v0 v1 ...` prints one histogram. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define min(x, y) ((x) < (y) ? (x) : (y))

static void print_stars(unsigned int val, unsigned int val_max, int width)
{
	int num_stars = min(val, val_max) * width / val_max;
	int num_spaces = width - num_stars;
	bool need_plus = val > val_max;
	for (int i = 0; i < num_stars; i++)
		printf("*");
	for (int i = 0; i < num_spaces; i++)
		printf(" ");
	if (need_plus)
		printf("+");
}

static void print_log2_hist(unsigned int *vals, int vals_size, const char *val_type)
{
	int stars_max = 40, idx_max = -1;
	unsigned int val, val_max = 0;
	unsigned long long low, high;
	int stars, width, i;

	for (i = 0; i < vals_size; i++) {
		val = vals[i];
		if (val > 0)
			idx_max = i;
		if (val > val_max)
			val_max = val;
	}
	if (idx_max < 0)
		return;
	printf("%*s%-*s : count    distribution\n", idx_max <= 32 ? 5 : 15, "",
	       idx_max <= 32 ? 19 : 29, val_type);
	stars = idx_max <= 32 ? stars_max : stars_max / 2;
	for (i = 0; i <= idx_max; i++) {
		low = (1ULL << (i + 1)) >> 1;
		high = (1ULL << (i + 1)) - 1;
		if (low == high)
			low -= 1;
		val = vals[i];
		width = idx_max <= 32 ? 10 : 20;
		printf("%*lld -> %-*lld : %-8d |", width, low, width, high, val);
		print_stars(val, val_max, stars);
		printf("|\n");
	}
}

static void print_linear_hist(unsigned int *vals, int vals_size, unsigned int base,
			      unsigned int step, const char *val_type)
{
	int i, stars_max = 40, idx_min = -1, idx_max = -1;
	unsigned int val, val_max = 0;

	for (i = 0; i < vals_size; i++) {
		val = vals[i];
		if (val > 0) {
			idx_max = i;
			if (idx_min < 0)
				idx_min = i;
		}
		if (val > val_max)
			val_max = val;
	}
	if (idx_max < 0)
		return;
	printf("     %-13s : count     distribution\n", val_type);
	for (i = idx_min; i <= idx_max; i++) {
		val = vals[i];
		if (!val_max)
			break;
		printf("        %-10d : %-8d |", base + i * step, val);
		print_stars(val, val_max, stars_max);
		printf("|\n");
	}
}

int main(int argc, char **argv)
{
	int linear = argc > 1 && !strcmp(argv[1], "linear");
	int at = linear ? 5 : 3;
	if (argc < at + 1)
		return 2;
	int n = atoi(argv[at]);
	unsigned int *vals = calloc(n ? n : 1, sizeof(*vals));
	for (int i = 0; i < n && at + 1 + i < argc; i++)
		vals[i] = strtoul(argv[at + 1 + i], NULL, 10);
	if (linear)
		print_linear_hist(vals, n, atoi(argv[3]), atoi(argv[4]), argv[2]);
	else
		print_log2_hist(vals, n, argv[2]);
	return 0;
}
