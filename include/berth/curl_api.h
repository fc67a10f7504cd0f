/* libcurl's entry points, loaded with dlopen the first time berth needs the
 * Docker API. libcurl pulls in some thirty shared libraries (TLS, Kerberos,
 * LDAP, ...): linked in, they would cost every berth process ~6 MB of RSS,
 * and dockerd runs one berth per published port. IP-only and docker-proxy
 * mode never load it. */
#ifndef BERTH_CURL_API_H
#define BERTH_CURL_API_H

#include <stddef.h>

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

struct curl_api {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_multi_init) *multi_init;
    __typeof__(curl_multi_setopt) *multi_setopt;
    __typeof__(curl_multi_cleanup) *multi_cleanup;
    __typeof__(curl_multi_socket_action) *multi_socket_action;
    __typeof__(curl_multi_assign) *multi_assign;
    __typeof__(curl_multi_info_read) *multi_info_read;
    __typeof__(curl_multi_add_handle) *multi_add_handle;
    __typeof__(curl_multi_remove_handle) *multi_remove_handle;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
};

/* Loads libcurl and runs its process-wide init, once per process; later
 * calls return the same table. NULL with a reason in err if it cannot. */
const struct curl_api *curl_api_load(char *err, size_t errlen);

#endif
