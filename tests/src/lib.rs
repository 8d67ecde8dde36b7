//! End-to-end tests that boot QEMU; see e2e/.
