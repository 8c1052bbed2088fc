/* The relay configuration that `ringrelay-bench run` generates, loaded
 * with the relay's own configuration parser. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/run_config.h"
#include "core/config.h"

/* Write the configuration for settings and load it into config. */
static void load_settings(const struct run_relay_settings *settings,
                          struct config *config)
{
    char text[4096];
    char err[512] = "";
    char config_path[] = "/tmp/test_run_config.XXXXXX";
    int fd = mkstemp(config_path);
    FILE *file;

    cr_assert_geq(fd, 0);
    file = fdopen(fd, "w");
    cr_assert_not_null(file);
    cr_assert_eq(run_config_format(settings, "/tmp/queue", text,
                                   sizeof(text)), 0);
    cr_assert_geq(fputs(text, file), 0);
    cr_assert_eq(fclose(file), 0);
    cr_assert_eq(config_init(config), 0);
    cr_assert_eq(config_load(config, config_path, err, sizeof(err)), 0,
                 "load failed: %s\n%s", err, text);
    unlink(config_path);
}

/* Load the configuration for listen with the sink as smarthost. */
static void load_generated(const char *listen, struct config *config)
{
    struct run_relay_settings settings = {
        .listen = listen,
        .smarthost = "[::1]:2526",
        .durability = "none",
    };

    load_settings(&settings, config);
}

static bool relays_for(const struct config *config, int family,
                       const char *address)
{
    struct sockaddr_storage storage = {0};
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;

    storage.ss_family = (sa_family_t)family;
    if (family == AF_INET) {
        cr_assert_eq(inet_pton(AF_INET, address, &v4->sin_addr), 1);
    } else {
        cr_assert_eq(inet_pton(AF_INET6, address, &v6->sin6_addr), 1);
    }
    for (size_t i = 0; i < config->relay_network_count; i++) {
        if (netaddr_cidr_match(&config->relay_networks[i],
                               (const struct sockaddr *)&storage)) {
            return true;
        }
    }
    return false;
}

Test(run_config, relays_for_loopback)
{
    struct config config;

    load_generated("[::1]:2525", &config);
    cr_expect(relays_for(&config, AF_INET, "127.0.0.1"));
    cr_expect(relays_for(&config, AF_INET, "127.0.0.2"));
    cr_expect(relays_for(&config, AF_INET6, "::1"));
    cr_expect_not(relays_for(&config, AF_INET, "10.0.0.1"));
    cr_expect_not(relays_for(&config, AF_INET6, "::2"));
    config_cleanup(&config);
}

Test(run_config, raises_connection_limits)
{
    struct config config;

    load_generated("127.0.0.1:2525", &config);
    cr_expect_eq(config.max_connections, 100000);
    cr_expect_eq(config.max_connections_per_ip, 100000);
    config_cleanup(&config);
}

Test(run_config, resolver_replaces_smarthost)
{
    struct run_relay_settings settings = {
        .listen = "127.0.0.1:2525",
        .smarthost = "0.0.0.0:25",
        .resolver = "127.0.0.1:53",
    };
    struct config config;

    load_generated("127.0.0.1:2525", &config);
    cr_expect(config.has_smarthost);
    cr_expect_not(config.has_resolver);
    cr_expect_not(config.mx_allow_loopback);
    config_cleanup(&config);

    load_settings(&settings, &config);
    cr_expect_not(config.has_smarthost);
    cr_expect(config.has_resolver);
    cr_expect_eq(config.resolver.port, 53);
    cr_expect(config.mx_allow_loopback);
    config_cleanup(&config);
}
