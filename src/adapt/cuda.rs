//! The fused CUDA kernels of `kernels.cu` as candle ops (no autograd: the training step's
//! backward is hand-written). Every op takes contiguous bf16 tensors and checks it; the composed
//! versions in [`super::ops`] are used elsewhere and are what these are compared with.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape,
    Storage, Tensor,
};
use half::bf16;

type Result<T> = candle_core::Result<T>;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/adapt_kernels.ptx"));

/// Launch kernel `$name` of `kernels.cu` with `$cfg` and the given arguments (references).
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let f = $dev.get_or_load_custom_func($name, "lore_adapt", PTX)?;
        let mut b = f.builder();
        $( b.arg($arg); )+
        // SAFETY: each caller states what its kernel reads and writes; the buffers are that big.
        unsafe { b.launch($cfg) }.w().map(|_| ())
    }};
}

/// A contiguous input's device memory from its first element.
fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, T>> {
    if !l.is_contiguous() {
        candle_core::bail!("{what}: the fused kernels take contiguous tensors");
    }
    Ok(s.as_cuda_slice::<T>()?.slice(l.start_offset()..))
}

/// A tensor held by an op (a weight, a table) as device memory.
fn held<T: CudaDType>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(CudaView<'_, T>) -> Result<CudaStorage>,
) -> Result<CudaStorage> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(s) = &*storage else {
        candle_core::bail!("{what}: not on the GPU")
    };
    f(view::<T>(s, layout, what)?)
}

fn out<T: CudaDType + DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every kernel below writes each element of its output.
    unsafe { dev.alloc::<T>(n) }
}

fn wrap<T: CudaDType>(slice: CudaSlice<T>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(slice, dev.clone())
}

/// A grid-stride launch over `n` elements.
fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of `threads` per row.
fn per_row(rows: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn no_cpu(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name} is a CUDA kernel"))
}

/// The `cpu_fwd` of an op with 1, 2 or 3 inputs that only runs on the GPU: an error.
macro_rules! cuda_only {
    (1) => {
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            Err(no_cpu(self.name()))
        }
    };
    (2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(no_cpu(self.name()))
        }
    };
    (3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(no_cpu(self.name()))
        }
    };
}

fn check_bf16(t: &Tensor, what: &str) -> Result<()> {
    if t.dtype() != DType::BF16 {
        candle_core::bail!("{what}: the fused kernels take bf16, not {:?}", t.dtype());
    }
    Ok(())
}

struct CausalSoftmax {
    heads: u32,
    t: u32,
}

impl CustomOp2 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "lore-causal-softmax"
    }
    cuda_only!(2);
    fn cuda_fwd(
        &self,
        s: &CudaStorage,
        sl: &Layout,
        st: &CudaStorage,
        stl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = s.device();
        let n = sl.shape().elem_count();
        let scores = view::<bf16>(s, sl, "scores")?;
        let starts = view::<u32>(st, stl, "document starts")?;
        let probs = out::<bf16>(dev, n)?;
        // SAFETY: the kernel reads `n` scores and b·t starts, and writes `n` probabilities.
        launch!(
            dev,
            "lore_causal_softmax_bf16",
            per_row(n / self.t as usize, 256),
            &scores,
            &starts,
            &probs,
            &self.heads,
            &self.t
        )?;
        Ok((wrap(probs, dev), sl.shape().clone()))
    }
}

/// `softmax(scores + packed causal mask)` of `[b, heads, t, t]` scores; `starts` (`[b·t]`, u32)
/// is where each query's document begins.
pub fn causal_softmax(scores: &Tensor, starts: &Tensor) -> Result<Tensor> {
    check_bf16(scores, "scores")?;
    let (_, heads, t, _) = scores.dims4()?;
    scores.contiguous()?.apply_op2_no_bwd(
        starts,
        &CausalSoftmax {
            heads: heads as u32,
            t: t as u32,
        },
    )
}

struct SoftmaxBack {
    t: u32,
}

impl CustomOp3 for SoftmaxBack {
    fn name(&self) -> &'static str {
        "lore-softmax-back"
    }
    cuda_only!(3);
    fn cuda_fwd(
        &self,
        p: &CudaStorage,
        pl: &Layout,
        dp: &CudaStorage,
        dpl: &Layout,
        rd: &CudaStorage,
        rdl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = p.device();
        let n = pl.shape().elem_count();
        if dpl.shape().elem_count() != n {
            candle_core::bail!("softmax backward: {:?} and {:?}", pl.shape(), dpl.shape());
        }
        let (pv, dpv) = (view::<bf16>(p, pl, "p")?, view::<bf16>(dp, dpl, "dp")?);
        let rdv = view::<f32>(rd, rdl, "row sums")?;
        let ds = out::<bf16>(dev, n)?;
        // SAFETY: `n` elements in, `n` out, n/t row sums.
        launch!(
            dev,
            "lore_softmax_back_bf16",
            elementwise(n),
            &pv,
            &dpv,
            &rdv,
            &ds,
            &self.t,
            &n
        )?;
        Ok((wrap(ds, dev), pl.shape().clone()))
    }
}

/// `p · (dp − rowdot)` with `rowdot` (f32) one number per row of `p`.
pub fn softmax_back(p: &Tensor, dp: &Tensor, rowdot: &Tensor) -> Result<Tensor> {
    check_bf16(p, "p")?;
    let t = p.dim(candle_core::D::Minus1)? as u32;
    let rowdot = rowdot.to_dtype(DType::F32)?.contiguous()?;
    p.contiguous()?
        .apply_op3_no_bwd(&dp.contiguous()?, &rowdot, &SoftmaxBack { t })
}

struct Swiglu;

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "lore-swiglu"
    }
    cuda_only!(2);
    fn cuda_fwd(
        &self,
        g: &CudaStorage,
        gl: &Layout,
        u: &CudaStorage,
        ul: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = g.device();
        let n = gl.shape().elem_count();
        let (gv, uv) = (view::<bf16>(g, gl, "gate")?, view::<bf16>(u, ul, "up")?);
        let o = out::<bf16>(dev, n)?;
        // SAFETY: `n` elements in each, `n` out.
        launch!(dev, "lore_swiglu_bf16", elementwise(n), &gv, &uv, &o, &n)?;
        Ok((wrap(o, dev), gl.shape().clone()))
    }
}

/// `silu(gate) · up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check_bf16(gate, "gate")?;
    if gate.shape() != up.shape() {
        candle_core::bail!("swiglu: gate {:?}, up {:?}", gate.shape(), up.shape());
    }
    gate.contiguous()?
        .apply_op2_no_bwd(&up.contiguous()?, &Swiglu)
}

struct SwigluBack;

impl CustomOp3 for SwigluBack {
    fn name(&self) -> &'static str {
        "lore-swiglu-back"
    }
    cuda_only!(3);
    fn cuda_fwd(
        &self,
        g: &CudaStorage,
        gl: &Layout,
        u: &CudaStorage,
        ul: &Layout,
        d: &CudaStorage,
        dl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = g.device();
        let n = gl.shape().elem_count();
        let (gv, uv) = (view::<bf16>(g, gl, "gate")?, view::<bf16>(u, ul, "up")?);
        let dv = view::<bf16>(d, dl, "gradient")?;
        let o = out::<bf16>(dev, 2 * n)?;
        // SAFETY: `n` elements in each, 2n out.
        launch!(
            dev,
            "lore_swiglu_back_bf16",
            elementwise(n),
            &gv,
            &uv,
            &dv,
            &o,
            &n
        )?;
        let mut dims = vec![2];
        dims.extend_from_slice(gl.dims());
        Ok((wrap(o, dev), Shape::from(dims)))
    }
}

/// The gradients of `silu(gate) · up` with respect to `gate` and `up`.
pub fn swiglu_back(gate: &Tensor, up: &Tensor, d: &Tensor) -> Result<(Tensor, Tensor)> {
    check_bf16(gate, "gate")?;
    if gate.shape() != up.shape() || gate.shape() != d.shape() {
        candle_core::bail!(
            "swiglu backward: shapes {:?} {:?} {:?}",
            gate.shape(),
            up.shape(),
            d.shape()
        );
    }
    let both =
        gate.contiguous()?
            .apply_op3_no_bwd(&up.contiguous()?, &d.contiguous()?, &SwigluBack)?;
    Ok((both.get(0)?, both.get(1)?))
}

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "lore-rms-norm"
    }
    cuda_only!(1);
    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let h = xl.dims()[xl.dims().len() - 1];
        let n = xl.shape().elem_count();
        let xv = view::<bf16>(x, xl, "x")?;
        let y = out::<bf16>(dev, n)?;
        held::<bf16>(&self.weight, "the norm's weight", |w| {
            let h32 = h as u32;
            // n/h rows of h in and out, a weight of h.
            launch!(
                dev,
                "lore_rms_norm_bf16",
                per_row(n / h, 256),
                &xv,
                &w,
                &y,
                &h32,
                &self.eps
            )?;
            Ok(wrap(y, dev))
        })
        .map(|s| (s, xl.shape().clone()))
    }
}

/// RMSNorm over the last dimension.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    check_bf16(x, "x")?;
    check_bf16(weight, "the norm's weight")?;
    x.contiguous()?.apply_op1_no_bwd(&RmsNorm {
        weight: weight.contiguous()?,
        eps: eps as f32,
    })
}

struct RmsNormBack {
    weight: Tensor,
    residual: Option<Tensor>,
    eps: f32,
}

impl CustomOp2 for RmsNormBack {
    fn name(&self) -> &'static str {
        "lore-rms-norm-back"
    }
    cuda_only!(2);
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        dy: &CudaStorage,
        dyl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let h = xl.dims()[xl.dims().len() - 1];
        let n = xl.shape().elem_count();
        let (xv, dyv) = (view::<bf16>(x, xl, "x")?, view::<bf16>(dy, dyl, "dy")?);
        let dx = out::<bf16>(dev, n)?;
        let name = "lore_rms_norm_back_bf16";
        let h32 = h as u32;
        let cfg = per_row(n / h, 256);
        held::<bf16>(&self.weight, "the norm's weight", |w| {
            match &self.residual {
                Some(r) => held::<bf16>(r, "the residual gradient", |rv| {
                    // n/h rows of h for x, dy, the residual and dx.
                    launch!(dev, name, cfg, &xv, &w, &dyv, &rv, &dx, &h32, &self.eps)?;
                    Ok(wrap(dx, dev))
                }),
                None => {
                    let null: u64 = 0;
                    // As above; a null residual is not read.
                    launch!(dev, name, cfg, &xv, &w, &dyv, &null, &dx, &h32, &self.eps)?;
                    Ok(wrap(dx, dev))
                }
            }
        })
        .map(|s| (s, xl.shape().clone()))
    }
}

/// `residual + ∂rms_norm(x)/∂x · dy` (the weight is frozen).
pub fn rms_norm_back(
    x: &Tensor,
    weight: &Tensor,
    eps: f64,
    dy: &Tensor,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    check_bf16(x, "x")?;
    check_bf16(dy, "dy")?;
    let residual = match residual {
        Some(r) => {
            check_bf16(r, "the residual gradient")?;
            if r.shape() != x.shape() {
                candle_core::bail!(
                    "rms norm backward: residual {:?}, x {:?}",
                    r.shape(),
                    x.shape()
                );
            }
            Some(r.contiguous()?)
        }
        None => None,
    };
    x.contiguous()?.apply_op2_no_bwd(
        &dy.contiguous()?,
        &RmsNormBack {
            weight: weight.contiguous()?,
            residual,
            eps: eps as f32,
        },
    )
}

/// Rows `[b·t, n·d]` to rotated heads `[b, n, t, d]` (forward), or back (`back`: rotated by the
/// opposite angle, heads to rows), times `scale`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
    dims: (u32, u32, u32, u32),
    scale: f32,
    back: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "lore-rope"
    }
    cuda_only!(1);
    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let (b, t, n, d) = self.dims;
        let count = (b * t * n * d) as usize;
        if xl.shape().elem_count() != count || d % 2 != 0 {
            candle_core::bail!("rope: input {:?} for {b}×{t}×{n}×{d}", xl.shape());
        }
        let xv = view::<bf16>(x, xl, "x")?;
        let o = out::<bf16>(dev, count)?;
        let name = if self.back {
            "lore_rope_back_to_rows_bf16"
        } else {
            "lore_rope_to_heads_bf16"
        };
        held::<bf16>(&self.cos, "cos", |c| {
            held::<bf16>(&self.sin, "sin", |s| {
                // b·t·n·d elements in and out, b·t·d/2 table entries.
                let cfg = elementwise(count / 2);
                launch!(dev, name, cfg, &xv, &c, &s, &o, &b, &t, &n, &d, &self.scale)?;
                Ok(wrap(o, dev))
            })
        })
        .map(|s| {
            let shape = if self.back {
                Shape::from(((b * t) as usize, (n * d) as usize))
            } else {
                Shape::from((b as usize, n as usize, t as usize, d as usize))
            };
            (s, shape)
        })
    }
}

/// Rotary embedding from a projection's rows `[b·t, n·d]` to heads `[b, n, t, d]`, times
/// `scale`; `cos` and `sin` are `[b·t, d/2]` in bf16.
pub fn rope_to_heads(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    rope_op(x, cos, sin, dims, scale, false)
}

/// The backward of [`rope_to_heads`]: heads `[b, n, t, d]` to rows `[b·t, n·d]`.
pub fn rope_back_to_rows(
    dy: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    rope_op(dy, cos, sin, dims, scale, true)
}

fn rope_op(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    scale: f64,
    back: bool,
) -> Result<Tensor> {
    check_bf16(x, "x")?;
    check_bf16(cos, "cos")?;
    let (b, t, n, d) = dims;
    x.contiguous()?.apply_op1_no_bwd(&Rope {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        dims: (b as u32, t as u32, n as u32, d as u32),
        scale: scale as f32,
        back,
    })
}

struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "lore-cross-entropy"
    }
    cuda_only!(2);
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        t: &CudaStorage,
        tl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let (m, v) = xl.shape().dims2()?;
        if tl.shape().elem_count() != m {
            candle_core::bail!("cross-entropy: {m} rows, {:?} targets", tl.shape());
        }
        let (xv, tv) = (
            view::<bf16>(x, xl, "logits")?,
            view::<u32>(t, tl, "targets")?,
        );
        let stats = out::<f32>(dev, 2 * m)?;
        let v32 = v as u32;
        // m rows of v logits, m targets, 2m statistics out.
        let name = "lore_cross_entropy_bf16";
        launch!(dev, name, per_row(m, 1024), &xv, &tv, &stats, &v32)?;
        Ok((wrap(stats, dev), Shape::from((m, 2))))
    }
}

struct CrossEntropyBack {
    stats: Tensor,
    scale: f32,
}

impl CustomOp2 for CrossEntropyBack {
    fn name(&self) -> &'static str {
        "lore-cross-entropy-back"
    }
    cuda_only!(2);
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        t: &CudaStorage,
        tl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let (m, v) = xl.shape().dims2()?;
        let (xv, tv) = (
            view::<bf16>(x, xl, "logits")?,
            view::<u32>(t, tl, "targets")?,
        );
        let grad = out::<bf16>(dev, m * v)?;
        let v32 = v as u32;
        let name = "lore_cross_entropy_back_bf16";
        held::<f32>(&self.stats, "the statistics", |s| {
            // m rows of v logits in and out, m targets, 2m statistics.
            let cfg = per_row(m, 1024);
            launch!(dev, name, cfg, &xv, &tv, &s, &grad, &v32, &self.scale)?;
            Ok(wrap(grad, dev))
        })
        .map(|s| (s, xl.shape().clone()))
    }
}

/// The summed cross-entropy of bf16 `logits` `[m, vocab]` against u32 `targets` (a `[1]` f32
/// tensor) and, given a scale, `scale · (softmax − onehot)` in bf16.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    scale: Option<f64>,
) -> Result<(Tensor, Option<Tensor>)> {
    check_bf16(logits, "logits")?;
    let logits = logits.contiguous()?;
    let targets = targets.contiguous()?;
    let stats = logits.apply_op2_no_bwd(&targets, &CrossEntropy)?;
    let loss = stats.narrow(1, 1, 1)?.sum_all()?.reshape(1)?;
    let Some(scale) = scale else {
        return Ok((loss, None));
    };
    let grad = logits.apply_op2_no_bwd(
        &targets,
        &CrossEntropyBack {
            stats,
            scale: scale as f32,
        },
    )?;
    Ok((loss, Some(grad)))
}

/// The hyperparameters of one AdamW step, as the kernel takes them.
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ.
    pub bc1: f32,
    pub bc2: f32,
}

struct AdamW<'a> {
    grad: Tensor,
    step: &'a AdamWStep,
}

impl CustomOp3 for AdamW<'_> {
    fn name(&self) -> &'static str {
        "lore-adamw"
    }
    cuda_only!(3);
    fn cuda_fwd(
        &self,
        p: &CudaStorage,
        pl: &Layout,
        m: &CudaStorage,
        ml: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = p.device();
        let n = pl.shape().elem_count();
        if ml.shape().elem_count() != n || vl.shape().elem_count() != n {
            candle_core::bail!(
                "adamw: parameter {:?}, moments {:?} {:?}",
                pl.shape(),
                ml.shape(),
                vl.shape()
            );
        }
        let (pv, mv, vv) = (
            view::<f32>(p, pl, "parameter")?,
            view::<f32>(m, ml, "m")?,
            view::<f32>(v, vl, "v")?,
        );
        let o = out::<f32>(dev, 3 * n)?;
        let s = self.step;
        held::<f32>(&self.grad, "the gradient", |g| {
            // n elements of p, g, m and v in, 3n out.
            let cfg = elementwise(n);
            launch!(
                dev,
                "lore_adamw_f32",
                cfg,
                &pv,
                &g,
                &mv,
                &vv,
                &o,
                &n,
                &s.lr,
                &s.beta1,
                &s.beta2,
                &s.eps,
                &s.weight_decay,
                &s.bc1,
                &s.bc2,
            )?;
            Ok(wrap(o, dev))
        })
        .map(|st| {
            let mut dims = vec![3];
            dims.extend_from_slice(pl.dims());
            (st, Shape::from(dims))
        })
    }
}

/// One AdamW step of an f32 parameter in one kernel: the new parameter and moments, stacked
/// (`[3, ...]`).
pub fn adamw(
    p: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: &AdamWStep,
) -> Result<Tensor> {
    for (t, what) in [(p, "parameter"), (grad, "gradient"), (m, "m"), (v, "v")] {
        if t.dtype() != DType::F32 {
            candle_core::bail!("adamw: the {what} is {:?}, not f32", t.dtype());
        }
    }
    p.contiguous()?.apply_op3_no_bwd(
        &m.contiguous()?,
        &v.contiguous()?,
        &AdamW {
            grad: grad.contiguous()?,
            step,
        },
    )
}
