use webdit_dsl::prelude::*;

// Kernel struct fields are kernel values, and not named like vector components.
#[kernel_struct]
struct Bad {
    x: u32,
}

#[kernel_struct]
struct AlsoBad {
    tiles: Vec<u32>,
}

fn main() {}
