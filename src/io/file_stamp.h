// What identifies a file's contents cheaply, for caches of what was read from it: its path, size, inode and
// modification and change times. A file replaced by a rename, or rewritten, gets another stamp; a same-size
// rewrite in place within one tick of the filesystem's clock (1 ns on ext4 and XFS, 2 s on FAT) is not seen.
#pragma once

#include <string>

namespace k5 {

// "" for a file that cannot be read (the load that follows reports it).
std::string file_stamp(const std::string& path);

}  // namespace k5
