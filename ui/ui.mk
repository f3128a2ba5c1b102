# UI targets (owned by ui/).
