/*
 * sidecar/discovery.hpp
 *
 * Finding the workers' sockets: --socket PATH is a prefix; the sidecar connects to PATH and to
 * every socket PATH.<something> in the same directory (one per database), and reconnects with
 * exponential backoff.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hasura_events::sidecar {

/* socket_name_matches: name is base itself or starts with base + "." */
bool socket_name_matches(const std::string &base, const std::string &name);

/* scan_sockets lists the matching Unix sockets for a prefix path, sorted; errors give an empty list */
std::vector<std::string> scan_sockets(const std::string &prefix_path, std::string *error = nullptr);

/* Backoff: 100 ms doubling to 5 s; reset after a successful handshake */
class Backoff {
public:
	static constexpr uint32_t kInitialMs = 100;
	static constexpr uint32_t kMaxMs = 5000;
	uint32_t next_delay_ms();
	void
	reset()
	{
		next_ms_ = kInitialMs;
	}

private:
	uint32_t next_ms_ = kInitialMs;
};

} // namespace hasura_events::sidecar
