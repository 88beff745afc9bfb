//! devfs (to do)
