//! Neutron control plane over oslo.messaging (in progress).
