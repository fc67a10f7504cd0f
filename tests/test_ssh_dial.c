/* ssh_dial against fake `ssh` scripts on PATH: the docker CLI's arguments,
 * bytes both ways through the child's stdio, the child reaped once its
 * socket closes, ssh's own stderr as the error (warnings skipped), and a
 * missing ssh told at once. No network, no real ssh. */
#include "check_run.h"
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/ssh_dial.h"

struct fx {
    char dir[64];
    struct event_base *base;
    struct ssh_dial *d;
};

/* A fake ssh: records its arguments one a line in DIR/args, then runs
 * body with DIR in $D. */
static void fake_ssh(struct fx *f, const char *body)
{
    char path[128];
    snprintf(path, sizeof path, "%s/ssh", f->dir);
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp,
            "#!/bin/sh\nD=%s\nfor a in \"$@\"; do echo \"$a\"; done >$D/args\n%s\n",
            f->dir, body);
    fclose(fp);
    ck_assert_int_eq(chmod(path, 0755), 0);
}

static void fx_init(struct fx *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/berth-ssh-dial.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    ck_assert_int_eq(setenv("PATH", f->dir, 1), 0);
    f->base = event_base_new();
    f->d = ssh_dial_new(f->base);
    ck_assert_ptr_nonnull(f->d);
}

static void fx_done(struct fx *f)
{
    ssh_dial_free(f->d);
    event_base_free(f->base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "/bin/rm -rf %s", f->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Opens a connection to dest and connects it, as libcurl does. */
static int dial(struct fx *f, const struct ssh_dest *dest)
{
    struct sockaddr_un addr;
    socklen_t len;
    char err[200];
    int fd = ssh_dial_open(f->d, dest, &addr, &len, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, len), 0);
    return fd;
}

static void spin(struct fx *f, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
    }
}

static void slurp(const char *path, char *out, size_t len)
{
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    size_t n = fread(out, 1, len - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

START_TEST(test_arguments_and_bytes_both_ways)
{
    struct fx f;
    fx_init(&f);
    fake_ssh(&f, "exec /bin/cat");
    struct ssh_dest dest = {.host = "box", .user = "me", .port = 2222};
    int fd = dial(&f, &dest);
    spin(&f, 50); /* the connect is accepted on the loop; ssh starts then */
    ck_assert_int_eq(write(fd, "ping\n", 5), 5);
    char buf[16] = {0};
    ck_assert_int_eq(read(fd, buf, sizeof buf), 5); /* blocking: cat echoes */
    ck_assert_str_eq(buf, "ping\n");
    char args[512], want[256];
    snprintf(want, sizeof want, "%s/args", f.dir);
    slurp(want, args, sizeof args);
    ck_assert_str_eq(args, "-l\nme\n-p\n2222\n-o\nConnectTimeout=30\n-T\n--\nbox\n"
                           "docker system dial-stdio\n");
    ck_assert_int_eq(ssh_dial_close(f.d, fd), 0);
    spin(&f, 300);
    /* Reaped: berth has no child left, zombie or not. */
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_str_eq(ssh_dial_last_error(f.d), ""); /* SIGTERM is berth's doing */
    fx_done(&f);
}
END_TEST

START_TEST(test_remote_socket_path_and_defaults)
{
    struct fx f;
    fx_init(&f);
    fake_ssh(&f, "exit 0");
    struct ssh_dest dest = {.host = "box", .path = "/run/it's.sock"};
    int fd = dial(&f, &dest);
    spin(&f, 200);
    char args[512], path[128];
    snprintf(path, sizeof path, "%s/args", f.dir);
    slurp(path, args, sizeof args);
    ck_assert_str_eq(args,
                     "-o\nConnectTimeout=30\n-T\n--\nbox\n"
                     "docker '--host=unix:///run/it'\\''s.sock' system dial-stdio\n");
    ssh_dial_close(f.d, fd);
    fx_done(&f);
}
END_TEST

START_TEST(test_stderr_explains_failure)
{
    struct fx f;
    fx_init(&f);
    fake_ssh(
        &f,
        "echo \"Warning: Permanently added 'box' to the list of known hosts.\" >&2\n"
        "echo 'me@box: Permission denied (publickey).' >&2\n"
        "echo 'second line' >&2\nexit 255");
    struct ssh_dest dest = {.host = "box", .user = "me"};
    int fd = dial(&f, &dest);
    char buf[16];
    for (int i = 0; i < 100; i++) { /* until ssh exits and the socket reads EOF */
        spin(&f, 10);
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            break;
    }
    ck_assert_str_eq(ssh_dial_last_error(f.d),
                     "me@box: Permission denied (publickey).");
    ssh_dial_close(f.d, fd);
    ssh_dial_forget(f.d);
    ck_assert_str_eq(ssh_dial_last_error(f.d), "");
    fx_done(&f);
}
END_TEST

START_TEST(test_exit_status_without_a_word)
{
    struct fx f;
    fx_init(&f);
    fake_ssh(&f, "exit 3");
    struct ssh_dest dest = {.host = "box"};
    int fd = dial(&f, &dest);
    spin(&f, 300);
    ck_assert_str_eq(ssh_dial_last_error(f.d), "ssh exited with status 3");
    ssh_dial_close(f.d, fd);
    fx_done(&f);
}
END_TEST

START_TEST(test_missing_ssh)
{
    struct fx f;
    fx_init(&f); /* PATH holds no ssh */
    struct ssh_dest dest = {.host = "box"};
    struct sockaddr_un addr;
    socklen_t len;
    char err[200];
    ck_assert_int_eq(ssh_dial_open(f.d, &dest, &addr, &len, err, sizeof err), -1);
    ck_assert_str_eq(err, "the ssh command is not installed (no ssh in PATH)");
    fx_done(&f);
}
END_TEST

START_TEST(test_free_ends_running_children)
{
    struct fx f;
    fx_init(&f);
    fake_ssh(&f, "exec /bin/sleep 60");
    struct ssh_dest dest = {.host = "box"};
    int fd1 = dial(&f, &dest), fd2 = dial(&f, &dest);
    spin(&f, 100);
    (void)fd1;
    (void)fd2;
    fx_done(&f); /* SIGTERM, reaped: nothing left behind */
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_url)
{
    char out[128];
    ssh_dest_url(&(struct ssh_dest){.host = "h", .user = "u", .port = 22}, out,
                 sizeof out);
    ck_assert_str_eq(out, "ssh://u@h:22");
    ssh_dest_url(&(struct ssh_dest){.host = "::1"}, out, sizeof out);
    ck_assert_str_eq(out, "ssh://[::1]");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssh_dial");
    TCase *tc = tcase_create("ssh_dial");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_arguments_and_bytes_both_ways);
    tcase_add_test(tc, test_remote_socket_path_and_defaults);
    tcase_add_test(tc, test_stderr_explains_failure);
    tcase_add_test(tc, test_exit_status_without_a_word);
    tcase_add_test(tc, test_missing_ssh);
    tcase_add_test(tc, test_free_ends_running_children);
    tcase_add_test(tc, test_url);
    suite_add_tcase(s, tc);
    return check_run(s);
}
