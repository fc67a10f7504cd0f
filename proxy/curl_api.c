#include "berth/curl_api.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Symbol name and where its address goes, in struct curl_api order. */
#define SYMBOLS(X)                                                                    \
    X(global_init)                                                                    \
    X(multi_init)                                                                     \
    X(multi_setopt)                                                                   \
    X(multi_cleanup)                                                                  \
    X(multi_socket_action)                                                            \
    X(multi_assign)                                                                   \
    X(multi_info_read)                                                                \
    X(multi_add_handle)                                                               \
    X(multi_remove_handle)                                                            \
    X(easy_init)                                                                      \
    X(easy_setopt)                                                                    \
    X(easy_getinfo)                                                                   \
    X(easy_cleanup)                                                                   \
    X(easy_strerror)                                                                  \
    X(slist_append)                                                                   \
    X(slist_free_all)

const struct curl_api *curl_api_load(char *err, size_t errlen)
{
    /* The library is process-wide state by nature (dlopen, and
     * curl_global_init which must run once), so the table is too. */
    static struct curl_api api;
    static bool loaded;
    if (loaded)
        return &api;
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load libcurl (install libcurl4): %s", dlerror());
        return NULL;
    }
    struct curl_api tmp;
#define LOAD(name)                                                                    \
    {                                                                                 \
        void *sym = dlsym(lib, "curl_" #name);                                        \
        if (!sym) {                                                                   \
            snprintf(err, errlen, "libcurl has no curl_" #name);                      \
            dlclose(lib);                                                             \
            return NULL;                                                              \
        }                                                                             \
        /* POSIX guarantees a data pointer from dlsym converts to the     \
         * function it names; memcpy states that without a cast. */           \
        memcpy(&tmp.name, &sym, sizeof tmp.name);                                     \
    }
    SYMBOLS(LOAD)
#undef LOAD
    if (tmp.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl failed to initialise");
        dlclose(lib);
        return NULL;
    }
    api = tmp;
    loaded = true;
    return &api;
}
