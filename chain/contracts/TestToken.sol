// SPDX-License-Identifier: MIT
// An ERC-20 for the local chain: USDC-like with 6 decimals or WBTC/DAI-like with 18, chosen at deploy
// time, the whole supply minted to the deployer (who funds the simulated wallets from it).
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

contract TestToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint256 supply)
        ERC20(name_, symbol_)
    {
        _decimals = decimals_;
        _mint(msg.sender, supply);
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
