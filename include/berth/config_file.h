/* The --config JSON file: its keys are the long option names, its values
 * JSON's (a flag true or false, a number a number, a list an array; a
 * publish entry may be an object with switches of its own). Each value goes
 * through config.c's checks, so a file says what the command line says.
 *
 * Pure: no sockets. Returns 0, or -1 with a one-line message in err that
 * names the file, the key and the offending text. */
#ifndef BERTH_CONFIG_FILE_H
#define BERTH_CONFIG_FILE_H

#include <stddef.h>

#include "berth/config.h"

/* Loads one JSON file (keys = long option names) into c. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* The same from memory; text need not be NUL-terminated. prefix starts
 * every message ("config 'f.json'"). */
int config_load_json(struct config *c, const char *text, size_t len,
                     const char *prefix, char *err, size_t errlen);

#endif
