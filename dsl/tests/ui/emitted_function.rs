use webdit_dsl::prelude::*;

// `#[kernel_fn(function)]` helpers take kernel values and return one.
#[kernel_fn(function)]
fn takes_array(x: &Array<f32>, i: u32) -> f32 {
    x[i]
}

#[kernel_fn(function)]
fn returns_nothing(v: f32) {}

#[kernel_fn(inline)]
fn unknown_argument(v: f32) -> f32 {
    v
}

fn main() {}
