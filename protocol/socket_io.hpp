/*
 * protocol/socket_io.hpp
 *
 * The one non-blocking write loop of the project (worker and sidecar sockets, the sidecar's
 * metrics endpoint): write from buf[off] on until done, EAGAIN or an error; EINTR continues.
 */
#pragma once

#include <cerrno>
#include <string>

#include <sys/socket.h>
#include <sys/types.h>

namespace hasura_events {

enum class SendResult { Done, WouldBlock, Failed };

/* Sends buf from off on; off advances by what was written. On Failed, errno says why. */
inline SendResult
send_buffered(int fd, const std::string &buf, size_t &off)
{
	while (off < buf.size()) {
		ssize_t n = ::send(fd, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += size_t(n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return SendResult::WouldBlock;
		return SendResult::Failed;
	}
	return SendResult::Done;
}

} // namespace hasura_events
