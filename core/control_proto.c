#include "core/control_proto.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/queue.h"

int control_socket_address(const char *queue_dir, struct sockaddr_un *addr,
                           socklen_t *len)
{
    int n;

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    n = snprintf(addr->sun_path, sizeof(addr->sun_path), "%s/%s", queue_dir,
                 CONTROL_SOCKET_NAME);
    if (n < 0 || (size_t)n >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    return 0;
}

bool control_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len != QUEUE_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)id[i])) {
            return false;
        }
    }
    return true;
}
