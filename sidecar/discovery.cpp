/*
 * sidecar/discovery.cpp
 *
 * Directory scan for worker sockets, and the reconnect backoff.
 */
#include "discovery.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>

namespace hasura_events::sidecar {

bool
socket_name_matches(const std::string &base, const std::string &name)
{
	if (base.empty())
		return false;
	if (name == base)
		return true;
	return name.size() > base.size() + 1 && name.compare(0, base.size(), base) == 0 && name[base.size()] == '.';
}

std::vector<std::string>
scan_sockets(const std::string &prefix_path, std::string *error)
{
	std::vector<std::string> found;
	size_t slash = prefix_path.rfind('/');
	std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : prefix_path.substr(0, slash));
	std::string base = slash == std::string::npos ? prefix_path : prefix_path.substr(slash + 1);
	DIR *d = opendir(dir.c_str());
	if (d == nullptr) {
		if (error)
			*error = "cannot open directory " + dir + ": " + strerror(errno);
		return found;
	}
	while (struct dirent *e = readdir(d)) {
		std::string name = e->d_name;
		if (!socket_name_matches(base, name))
			continue;
		std::string path = (dir == "/" ? "" : dir) + "/" + name;
		struct stat st;
		if (stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
			found.push_back(path);
	}
	closedir(d);
	std::sort(found.begin(), found.end());
	return found;
}

uint32_t
Backoff::next_delay_ms()
{
	uint32_t v = next_ms_;
	next_ms_ = std::min(next_ms_ * 2, kMaxMs);
	return v;
}

} // namespace hasura_events::sidecar
