/* Every BTF kind, for the parser and dump tests.  clang 14 emits all of them
 * but ENUM64 (clang >= 15 does, for enumerators that need 64 bits). */
#define SEC(name) __attribute__((section(name), used))

typedef unsigned int u32;
typedef unsigned long long u64;

enum small { SMALL_A = 1, SMALL_B = 2 };
enum neg { NEG_A = -3, NEG_B = 5 };
#if __clang_major__ >= 15
#define HAVE_ENUM64 1
enum big { BIG_A = 0xffffffff00ULL, BIG_B = 1 };
enum sbig { SBIG_A = -0x1000000000LL, SBIG_B = 7 };
#endif
#define TAG(x) __attribute__((btf_decl_tag(x)))
/* A type tag goes on the pointee: BTF gets PTR -> TYPE_TAG -> int. */
#define UTAG __attribute__((btf_type_tag("user")))

struct fwd_only;
union fwd_union;

struct bits {
	unsigned int a : 3;
	int b : 5;
	unsigned long long c : 40;
	char tail;
} TAG("bits_tag");

union u {
	int i;
	float f;
	double d;
	struct { short x, y; } pair;
};

struct all {
	const volatile int cv;
	int *restrict rp;
	int UTAG *up;
	char name[16];
	int grid[2][3];
	struct bits bits;
	union u u;
	enum small small;
	enum neg neg;
#ifdef HAVE_ENUM64
	enum big big;
	enum sbig sbig;
#endif
	struct fwd_only *fwd;
	union fwd_union *fwdu;
	u64 (*fn)(u32 a, ...);
	long double ld;
	_Bool flag;
	__int128 wide;
	int TAG("member_tag") tagged;
};

struct all g_all;
int g_counter = 3;
const volatile u32 g_ro = 7;
static int g_static_var SEC(".data.custom") = 4;
extern int g_extern_kcfg __attribute__((section(".kconfig"), weak));
/* A kernel function: a FUNC with extern linkage inside DATASEC .ksyms. */
extern int bpf_kfunc_example(int x) __attribute__((section(".ksyms")));

static __attribute__((noinline)) int helper(struct all *p TAG("param_tag"), int x)
{
	return p->grid[1][2] + x + g_static_var;
}

SEC("tracepoint/syscalls/sys_enter_read")
int TAG("func_tag") prog(void *ctx)
{
	return helper(&g_all, g_counter + (int)g_ro + g_extern_kcfg) + bpf_kfunc_example(1);
}

char LICENSE[] SEC("license") = "GPL";
