//! The samplers, as per-step coefficients of `x = a·x + b·eps + c·z` (the form of the GPU's
//! `sampler_step` kernel and of the CPU path): DDPM over the model's T steps (the
//! original's sampler), and DDIM (eta = 0) over any number of evenly spaced steps.

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
/// `z` from noise stream `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub t: usize,
    pub a: f32,
    pub b: f32,
    pub c: f32,
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
                    let (t, ab) = (ts[i], abar[ts[i]]);
                    let prev = if i > 0 { abar[ts[i - 1]] } else { 1.0 };
                    Step {
                        t,
                        a: (prev / ab).sqrt() as f32,
                        b: ((1.0 - prev).sqrt() - (prev * (1.0 - ab) / ab).sqrt()) as f32,
                        c: 0.0,
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
            let got = s.a as f64 * x + s.b as f64 * eps + s.c as f64 * z;
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
        let mut x = abar[p[0].t].sqrt() * x0 + (1.0 - abar[p[0].t]).sqrt() * eps;
        for s in &p {
            x = s.a as f64 * x + s.b as f64 * eps;
        }
        assert!((x - x0).abs() < 1e-3, "{x}");
    }
}
