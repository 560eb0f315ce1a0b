//! Guest images: the cpio writer, ELF dependency resolution, kernel modules, the initramfs.

pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod modules;
pub mod vmlinux;

pub use initramfs::{build, Compression, ImageError, ImageInputs};
