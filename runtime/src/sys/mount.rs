//! Raw mount-related syscalls that `nix` does not wrap (e.g. mount_setattr, open_tree). OWNER: rootfs helper.
