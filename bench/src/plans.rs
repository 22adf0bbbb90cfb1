//! Every plan (tier, slices of K) of the model's products, and every attention split, next
//! to the ones the runtime picks.

use crate::products::{model_products, time_attention, time_attention_rows, time_plan};
use crate::timing::Bench;
use webdit_kernels::attention::ROWS_MAX_N;
use webdit_kernels::Tiles;
use webdit_model::tiers::{
    all_plans, attention_by_rows, attention_chunks, plan_matmul, MatmulPlan, SCRATCH_FLOATS,
};
use webdit_model::Config;

/// Prints the plan table.
pub fn plans(b: &Bench, models: &[(String, Config)]) {
    println!("\n## every plan of the model's products (f32)\n\n| product | shape | planned | time | fastest | time | all plans (µs) |\n|---|---|---|---|---|---|---|");
    let tiles = Tiles::named(webdit_model::kernels::TILES).unwrap();
    for (name, c) in models {
        for batch in [1usize, 16] {
            for (what, shape) in model_products(c, batch) {
                let chosen = plan_matmul(&tiles, shape, SCRATCH_FLOATS);
                let mut all: Vec<(f64, MatmulPlan)> = all_plans(&tiles, shape, SCRATCH_FLOATS)
                    .into_iter()
                    .map(|p| (time_plan(b, false, &p).0, p))
                    .collect();
                let cell = |p: &MatmulPlan| format!("{}/{}", p.tier, p.splits);
                let t_chosen = all.iter().find(|(_, p)| *p == chosen).unwrap().0;
                let list: Vec<String> = all
                    .iter()
                    .map(|(t, p)| format!("{} {:.1}", cell(p), t * 1e6))
                    .collect();
                all.sort_by(|x, y| x.0.total_cmp(&y.0));
                let (t_best, best) = &all[0];
                let (m, n, k) = shape;
                println!(
                    "| {name} b{batch} {what} | {m}×{n}×{k} | {} | {:.1} µs | {} | {:.1} µs | {} |",
                    cell(&chosen),
                    t_chosen * 1e6,
                    cell(best),
                    t_best * 1e6,
                    list.join(", ")
                );
            }
            let n = c.tokens();
            let chosen = if attention_by_rows(n, c.dim_head) {
                "by rows".to_string()
            } else {
                format!("{} slices", attention_chunks(n, c.heads, batch))
            };
            let mut all: Vec<String> = [1, 2, 4, 8, 16]
                .into_iter()
                .filter(|s| (n as u32).div_ceil(*s) >= 8)
                .map(|s| format!("{s} {:.1}", time_attention(b, c, batch, s).0 * 1e6))
                .collect();
            let rows_variant = webdit_kernels::attention_rows_width(c.dim_head).is_some();
            if n <= ROWS_MAX_N as usize && rows_variant {
                let t = time_attention_rows(b, c, batch).0;
                all.push(format!("by rows {:.1}", t * 1e6));
            }
            println!(
                "| {name} b{batch} attention | {batch}×{n}×{} | {chosen} | | | | {} |",
                c.dim_head,
                all.join(", ")
            );
        }
    }
}
