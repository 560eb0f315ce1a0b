/* Reproduces, in C alone, the leak the seccomp_bpf fuzz target found (LeakSanitizer: 3456 bytes
 * in 36 objects, indirect, allocated inside libseccomp 2.5.4, Debian 12): a rule table whose
 * conditions libseccomp merges. isorun releases its context; the leak is libseccomp's, hence
 * fuzz/lsan.supp. Build: gcc -fsanitize=address libseccomp-leak.c -lseccomp && ./a.out */
#define _GNU_SOURCE
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
int main(void) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL);
  struct scmp_arg_cmp a[3] = {
    SCMP_A2(SCMP_CMP_NE, 7936186964602086766ULL),
    SCMP_A5(SCMP_CMP_MASKED_EQ, 2522014830083534370ULL, 0),
    SCMP_A1(SCMP_CMP_GT, 7308815671442350369ULL)};
  const char *n1[] = {"bpf","bpf","bpf","bpf","clone3"};
  for (int i = 0; i < 5; i++) {
    int rc = seccomp_rule_add_array(ctx, SCMP_ACT_TRAP, seccomp_syscall_resolve_name(n1[i]), 3, a);
    printf("r1 %s %d\n", n1[i], rc);
  }
  struct scmp_arg_cmp b[4] = {
    SCMP_A2(SCMP_CMP_GE, 7936186964602086766ULL),
    SCMP_A5(SCMP_CMP_MASKED_EQ, 2522014830083534370ULL, 0),
    SCMP_A1(SCMP_CMP_MASKED_EQ, 2387225703656530209ULL, 2387225703656530209ULL),
    SCMP_A1(SCMP_CMP_NE, 2387225703656530209ULL)};
  const char *n2[] = {"kexec_load","bpf","read","bpf","clone3"};
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) {
      int rc = seccomp_rule_add_array(ctx, SCMP_ACT_TRAP, seccomp_syscall_resolve_name(n2[i]), 1, &b[j]);
      printf("r2 %s %d %d\n", n2[i], j, rc);
    }
  int fd = memfd_create("x", 0);
  printf("export %d\n", seccomp_export_bpf(ctx, fd));
  seccomp_release(ctx);
  return 0;
}
