//! Shared pieces of keygate's benchmarks: the synthetic data set.

pub mod dataset;
