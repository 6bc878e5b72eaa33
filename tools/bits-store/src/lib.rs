//! Bits storage: upload and fetch build artifacts in the eng layout
