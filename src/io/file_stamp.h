// What identifies a file's contents cheaply, for caches of what was read from it: its path, size, inode and change
// times (a file rewritten, or replaced by a rename, gets another stamp; a same-size rewrite within the
// filesystem's timestamp tick changes ctime's nanoseconds or the inode).
#pragma once

#include <string>

namespace k5 {

// "" for a file that cannot be read (the load that follows reports it).
std::string file_stamp(const std::string& path);

}  // namespace k5
