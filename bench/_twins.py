"""The contenders cdl is timed against: the book's NumPy code and the same networks in PyTorch.

    book_conv, book_pool          the book's Convolution and Pooling layers (common/layers.py),
                                  with its im2col/col2im (common/util.py), float32 throughout
    torch_deep_convnet, torch_resnet
                                  cdl.models.DeepConvNet and ResNet written in torch.nn
    CdlTrainer, TorchTrainer      one DeepConvNet training step per call, in each framework

Used by bench/_tables.py (hence bench/conv.py, pool.py, epoch.py, cuda.py); torch is
passed in by the caller (``_common.torch_or_none()``), so this module imports without it.
"""
import numpy as np


# -- the book's code (common/util.py, common/layers.py), float32 throughout ------------

def book_im2col(x, kh, kw, stride, pad):
    N, C, H, W = x.shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, kh, kw, oh, ow), dtype=x.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            col[:, :, y, x_, :, :] = img[:, :, y:y_max:stride, x_:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * oh * ow, -1)


def book_col2im(col, x_shape, kh, kw, stride, pad):
    N, C, H, W = x_shape
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    col = col.reshape(N, oh, ow, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(kh):
        y_max = y + stride * oh
        for x_ in range(kw):
            x_max = x_ + stride * ow
            img[:, :, y:y_max:stride, x_:x_max:stride] += col[:, :, y, x_, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


def book_conv(x, W, b, dout, stride, pad):
    """Forward then backward of the book's Convolution layer; returns (y, dx, dW, db)."""
    FN, C, FH, FW = W.shape
    N, _, H, Wd = x.shape
    oh, ow = (H + 2 * pad - FH) // stride + 1, (Wd + 2 * pad - FW) // stride + 1
    col = book_im2col(x, FH, FW, stride, pad)
    col_W = W.reshape(FN, -1).T
    y = (col @ col_W + b).reshape(N, oh, ow, -1).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
    db = d.sum(axis=0)
    dW = (col.T @ d).transpose(1, 0).reshape(FN, C, FH, FW)
    dx = book_col2im(d @ col_W.T, x.shape, FH, FW, stride, pad)
    return y, dx, dW, db


def book_pool(op, x, dout, k, s):
    """The book's Pooling forward + backward (max; average the same way with mean)."""
    N, C, H, W = x.shape
    oh, ow = (H - k) // s + 1, (W - k) // s + 1
    col = book_im2col(x, k, k, s, 0).reshape(-1, k * k)
    if op == "max":
        arg = np.argmax(col, axis=1)
        y = np.max(col, axis=1).reshape(N, oh, ow, C).transpose(0, 3, 1, 2)
    else:
        y = np.mean(col, axis=1).reshape(N, oh, ow, C).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1)
    if op == "max":
        dmax = np.zeros((d.size, k * k), dtype=x.dtype)
        dmax[np.arange(arg.size), arg.flatten()] = d.flatten()
    else:
        dmax = np.repeat(d.reshape(-1, 1) / (k * k), k * k, axis=1)
    dx = book_col2im(dmax.reshape(N * oh * ow, -1), x.shape, k, k, s, 0)
    return y, dx


# -- the same networks in torch.nn ----------------------------------------------------

def torch_deep_convnet(torch, in_channels=1):
    """cdl.models.DeepConvNet on 28x28 in torch.nn, layer for layer, He init."""
    nn = torch.nn
    layers, cin = [], in_channels
    for stage, cout in enumerate((16, 32, 64)):
        for pad in (1, 2 if stage == 1 else 1):
            layers += [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]
            cin = cout
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(50, 10), nn.Dropout(0.5)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def torch_resnet(torch, in_channels=1, channels=(16, 32, 64), blocks=1):
    """cdl.models.ResNet in torch.nn (basic blocks, 1x1 projection shortcuts)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.path = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.path(x) + self.short(x))

    layers = [nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False),
              nn.BatchNorm2d(channels[0]), nn.ReLU()]
    cin = channels[0]
    for stage, cout in enumerate(channels):
        for b in range(blocks):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


class CdlTrainer:
    """One DeepConvNet training step per call, the book's way (loss, backward, update)."""

    def __init__(self, seed=0):
        import cdl
        from cdl import optim
        from cdl.models import DeepConvNet
        cdl.seed(seed)
        self.net = DeepConvNet(rng=seed)
        self.opt = optim.Adam(lr=1e-3)

    def step(self, x, t):
        loss = self.net.loss(x, t)
        self.net.backward(input_grad=False)  # as torch: the images do not require grad
        self.opt.update(self.net.params, self.net.grads)
        return loss


class TorchTrainer:
    """The same step in PyTorch: DeepConvNet twin, CrossEntropyLoss, Adam(lr=1e-3)."""

    def __init__(self, torch, seed=0):
        torch.manual_seed(seed)
        self.torch = torch
        self.net = torch_deep_convnet(torch).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def step(self, x, t):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.torch.from_numpy(x)), self.torch.from_numpy(t))
        loss.backward()
        self.opt.step()
        return loss.item()
