//! The samplers, as per-step coefficients of `x = a·x + b·eps + c·z` (the form of the GPU's
//! `sampler_step` kernel and of the CPU path): DDPM over the model's T steps (the
//! original's sampler), and DDIM (eta = 0, with the image estimate clipped to [-1, 1]) over
//! any number of evenly spaced steps.

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    Ddpm,
    Ddim,
}

/// The cosine schedule: `(betas, alphas, alpha-bars)` for t = 0..T, in f64.
pub fn schedule(steps: usize, s: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let f = |t: usize| {
        (((t as f64 / steps as f64 + s) / (1.0 + s)) * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    let f0 = f(0);
    let betas: Vec<f64> = (0..steps)
        .map(|t| (1.0 - (f(t + 1) / f0) / (f(t) / f0)).clamp(0.0, 0.999))
        .collect();
    let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
    let abar = alphas
        .iter()
        .scan(1.0, |p, a| {
            *p *= a;
            Some(*p)
        })
        .collect();
    (betas, alphas, abar)
}

/// One denoising step: run the model at timestep `t`, then `x = a·x + b·eps + c·z` with
/// `z` from noise stream `t`. With `x0 = Some([u, v])` (DDIM), `b` multiplies the model's
/// image estimate clipped to the image range, `clamp(u·x + v·eps, -1, 1)`, instead of eps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub t: usize,
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub x0: Option<[f32; 2]>,
}

impl Step {
    /// The update of one element, given its standard-normal noise `z`.
    pub fn apply(&self, x: f32, eps: f32, z: f32) -> f32 {
        let e = match self.x0 {
            Some([u, v]) => (u * x + v * eps).clamp(-1.0, 1.0),
            None => eps,
        };
        self.a * x + self.b * e + self.c * z
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("--steps must be at least 1")]
    NoSteps,
    #[error("DDPM runs the model's {0} training steps; use --sampler ddim for fewer")]
    DdpmSteps(usize),
    #[error("--steps {0} is more than the model's {1} training steps")]
    TooMany(usize, usize),
}

/// The steps of a generation, from pure noise (noise stream T) to the image.
pub fn plan(config: &Config, sampler: Sampler, steps: usize) -> Result<Vec<Step>, PlanError> {
    let big_t = config.steps;
    if steps == 0 {
        return Err(PlanError::NoSteps);
    }
    if steps > big_t {
        return Err(PlanError::TooMany(steps, big_t));
    }
    let (betas, alphas, abar) = schedule(big_t, config.schedule_s);
    Ok(match sampler {
        Sampler::Ddpm => {
            if steps != big_t {
                return Err(PlanError::DdpmSteps(big_t));
            }
            (0..big_t)
                .rev()
                .map(|t| {
                    let ra = alphas[t].sqrt();
                    Step {
                        t,
                        a: (1.0 / ra) as f32,
                        b: (-betas[t] / ((1.0 - abar[t]).sqrt() * ra)) as f32,
                        c: if t > 0 { betas[t].sqrt() as f32 } else { 0.0 },
                        x0: None,
                    }
                })
                .collect()
        }
        Sampler::Ddim => {
            // Evenly spaced from 0 to T-1, so the first step starts from (nearly) pure noise.
            let ts: Vec<usize> = (0..steps)
                .map(|i| {
                    if steps == 1 {
                        big_t - 1
                    } else {
                        (i as f64 * (big_t - 1) as f64 / (steps - 1) as f64).round() as usize
                    }
                })
                .collect();
            (0..steps)
                .rev()
                .map(|i| {
                    // x0 = clamp((x - s1·eps) / s0), then x' = p0·x0 + p1·(x - s0·x0) / s1:
                    // the noise direction is re-derived from the clipped estimate. Without
                    // the clip, few steps fail: at the noisiest step s0 is ~1.5e-3, so the
                    // model's eps errors reach x0 amplified ~650×.
                    let (t, ab) = (ts[i], abar[ts[i]]);
                    let prev = if i > 0 { abar[ts[i - 1]] } else { 1.0 };
                    let (s0, s1, p0, p1) = (
                        ab.sqrt(),
                        (1.0 - ab).sqrt(),
                        prev.sqrt(),
                        (1.0 - prev).sqrt(),
                    );
                    Step {
                        t,
                        a: (p1 / s1) as f32,
                        b: (p0 - p1 * s0 / s1) as f32,
                        c: 0.0,
                        x0: Some([(1.0 / s0) as f32, (-s1 / s0) as f32]),
                    }
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddpm_matches_the_reference_formula() {
        let c = Config {
            steps: 4,
            ..Config::favicon_s()
        };
        let (betas, alphas, abar) = schedule(4, c.schedule_s);
        let p = plan(&c, Sampler::Ddpm, 4).unwrap();
        assert_eq!(p.iter().map(|s| s.t).collect::<Vec<_>>(), vec![3, 2, 1, 0]);
        let (x, eps, z) = (0.7f64, -0.3f64, 0.2f64);
        for s in &p {
            let t = s.t;
            let want = (x - betas[t] / (1.0 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
                + if t > 0 { betas[t].sqrt() * z } else { 0.0 };
            let got = s.apply(x as f32, eps as f32, z as f32) as f64;
            assert!(
                (got - want).abs() < 1e-5 * want.abs().max(1.0),
                "t={t}: {got} vs {want}"
            );
        }
        assert_eq!(plan(&c, Sampler::Ddpm, 2), Err(PlanError::DdpmSteps(4)));
        assert_eq!(plan(&c, Sampler::Ddim, 0), Err(PlanError::NoSteps));
    }

    #[test]
    fn ddim_with_all_steps_lands_on_x0() {
        // With eps exactly the noise of x = sqrt(ab)·x0 + sqrt(1-ab)·eps, DDIM recovers x0.
        let c = Config::favicon_s();
        let (_, _, abar) = schedule(c.steps, c.schedule_s);
        let (x0, eps) = (0.4f64, 1.3f64);
        let p = plan(&c, Sampler::Ddim, 8).unwrap();
        let mut x = (abar[p[0].t].sqrt() * x0 + (1.0 - abar[p[0].t]).sqrt() * eps) as f32;
        for s in &p {
            x = s.apply(x, eps as f32, 0.0);
        }
        assert!((x as f64 - x0).abs() < 1e-3, "{x}");
    }

    #[test]
    fn ddim_clips_the_image_estimate() {
        // A wildly wrong eps at the noisiest step: the estimate is clipped to the image
        // range, so one step lands within [-1, 1] instead of far outside.
        let c = Config::favicon_s();
        let p = plan(&c, Sampler::Ddim, 1).unwrap();
        let x = p[0].apply(0.5, -40.0, 0.0);
        assert_eq!(x, 1.0);
        let x = p[0].apply(0.5, 40.0, 0.0);
        assert_eq!(x, -1.0);
    }
}
