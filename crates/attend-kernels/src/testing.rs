//! Helpers for the kernels' unit tests.

/// Asserts that `grad` is the gradient of `loss` at `x`: every element
/// against the central difference with step `eps`, within `tol` absolute.
pub(crate) fn assert_central_differences(name: &str, x: &[f32], grad: &[f32], eps: f32, tol: f64, loss: &dyn Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), grad.len(), "{name}: gradient length");
    for i in 0..x.len() {
        let (mut up, mut down) = (x.to_vec(), x.to_vec());
        up[i] += eps;
        down[i] -= eps;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * eps as f64);
        assert!((numeric - grad[i] as f64).abs() < tol, "{name}[{i}]: numeric {numeric} vs {}", grad[i]);
    }
}
