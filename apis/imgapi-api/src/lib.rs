//! Dropshot API trait for the IMGAPI subset the toolchain uses
