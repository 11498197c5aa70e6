//! inotify watcher (being written)
